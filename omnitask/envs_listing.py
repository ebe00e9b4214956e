"""Text of ``omnitask envs``: the id table (columns sized to the longest id) and one id's full description."""
from __future__ import annotations


def listing(family: str | None = None) -> str:
    """One line per registered id: ``<id> <family> <description>``, aligned whatever the id lengths."""
    import envs
    from envs.registry import entry

    ids = envs.list_ids(family)
    if not ids:
        raise ValueError(f"no environment ids in family {family!r}; families: "
                         f"{', '.join(sorted({entry(i).family for i in envs.list_ids()}))}")
    rows = [(i, entry(i).family, entry(i).description) for i in ids]
    w_id, w_fam = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    lines = [f"{i:{w_id}s}  {fam:{w_fam}s}  {desc}".rstrip() for i, fam, desc in rows]
    lines.append("\n`omnitask envs ENV_ID` prints one env's observation/action spec, every task name and the "
                 "context variables.")
    return "\n".join(lines)


def describe(env_id: str) -> str:
    """The spec of ``env_id`` (all task names) followed by its registry description (batch-size rules live there)."""
    import envs
    from envs.registry import entry

    e = entry(env_id)
    return envs.spec(env_id).describe() + (f"\n  about: {e.description}" if e.description else "")
