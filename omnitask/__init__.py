"""omnitask: configs, run loop, checkpoints, logging and the ``omnitask`` CLI shared by every agent."""
