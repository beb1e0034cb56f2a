"""The markdown table of a run."""

from __future__ import annotations

from typing import Any


def markdown(document: dict[str, Any]) -> str:
    m = document["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    lines = [
        f"# Herald benchmarks ({document['mode']} run, {document['generated']})",
        "",
        f"Machine: {m['cores']} cores, {m['memory_gb']} GB, {m['cpu'] or 'unknown CPU'}; {m['platform']}.  ",
        f"Versions: {versions}. Whole run: {document['seconds']:.0f} s.",
        "",
        "| Scenario | Figure | Baseline (same run) | Ratio | Target | Met | Time |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in document["scenarios"]:
        ratio = f"{s['ratio']:.2f}" if s["ratio"] is not None else "-"
        met = {True: "yes", False: "**no**", None: "-"}[s["met"]]
        lines.append(
            f"| {s['title']} | {s['figure']} | {s['baseline']} | {ratio} | {s['target']} | {met} | {s['seconds']:.0f} s |"
        )
    notes = [(s["name"], n) for s in document["scenarios"] for n in s.get("notes", [])]
    if notes:
        lines += ["", "Notes:", ""]
        lines += [f"- {name}: {note}" for name, note in notes]
    lines.append("")
    return "\n".join(lines)
