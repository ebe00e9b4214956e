"""Pieces shared by omnitask agents: network torsos and heads, action distributions, an array replay buffer."""
