"""The report: a JSON file with every sample and a markdown table of medians, spreads
and ceilings."""

from __future__ import annotations

from pathlib import Path

from common import Figure, dump_json


def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def cell(xs: list[float]) -> str:
    s = Figure.stats(xs)
    if s is None:
        return "-"
    return f"{fmt(s['median'])} ({fmt(s['min'])}..{fmt(s['max'])})"


def markdown(meta: dict, figs: list[Figure], perf: dict[str, str]) -> str:
    lines = [f"# mailhook benchmark, {meta['date']}", "",
             f"- command: `{meta['command']}`",
             f"- machine: {meta['machine']}",
             f"- load average before / after: {meta['load_before']} / {meta['load_after']}",
             f"- PostgreSQL: {meta.get('postgres') or 'not read'}",
             f"- runs per figure: {meta['runs']} (median, then min..max)", ""]
    for part in dict.fromkeys(f.part for f in figs):
        lines += [f"## {part}", "",
                  "| figure | unit | median (min..max) | ceiling | ceiling median (min..max) | note |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for f in (f for f in figs if f.part == part):
            ceiling = cell(f.ceiling_samples) if not f.skip else f"skip: {f.skip}"
            lines.append(f"| {f.name} | {f.unit} | {cell(f.samples)} | {f.ceiling_name or '-'} | "
                         f"{ceiling} | {f.note} |")
        lines += ["", "Commands:", ""]
        for f in (f for f in figs if f.part == part):
            lines.append(f"- {f.name}: `{f.command}`" +
                         (f"; ceiling: `{f.ceiling_command}`" if f.ceiling_command else ""))
        lines.append("")
    for name, top in perf.items():
        lines += [f"## perf: {name} (self time by library, then top symbols)", "", "```", top, "```", ""]
    return "\n".join(lines)


def write(out: Path, meta: dict, figs: list[Figure], perf: dict[str, str], failures: dict) -> None:
    dump_json(out / "report.json", {"meta": meta, "figures": [f.as_dict() for f in figs],
                                    "perf": perf, "failures": failures})
    text = markdown(meta, figs, perf)
    if failures:
        text += "\n## parts that failed\n\n" + "\n".join(f"- {k}: {v}" for k, v in failures.items()) + "\n"
    (out / "report.md").write_text(text)
