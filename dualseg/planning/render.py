"""A plan as the YAML config ``dualseg train`` runs as is: each planned value followed by the reason it was chosen,
the fingerprint and the measurements in the header."""

from __future__ import annotations

import datetime as dt
from typing import Any

import yaml

from dualseg.planning.fingerprint import render_fingerprint
from dualseg.planning.plan import Plan


def _flow(value: Any) -> str:
    """One value as a single line of YAML (flow style)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=2**31, sort_keys=False).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _lines(node: dict[str, Any], reasons: dict[str, str], prefix: str = "", indent: int = 0) -> list[str]:
    out = []
    pad = "  " * indent
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        reason = reasons.get(dotted)
        if isinstance(value, dict) and value and reason is None:
            out.append(f"{pad}{key}:")
            out += _lines(value, reasons, dotted + ".", indent + 1)
        else:
            line = f"{pad}{key}: {_flow(value)}"
            out.append(f"{line}  # {reason}" if reason else line)
    return out


def render_plan(plan: Plan, fp: dict, machine: str) -> str:
    """The YAML text of ``plan``; ``machine`` names where it was measured (CPU model or GPU)."""
    p = plan.probe
    head = [f"# dualseg plan of {fp['dataset_folder']} on {dt.date.today().isoformat()}, measured on {machine}"]
    if p is not None:
        head.append(f"#   {p.step_s:.3f} s per training step, {p.eval_image_s:.3f} s per validation image, "
                    f"{p.activation_mib:.0f} MiB of activations per patch ({p.device}, {p.precision}, {p.threads} "
                    "threads)")
    head.append("# train with: dualseg train THIS_FILE.yaml (a plan is valid on the machine kind it was measured on)")
    head.append("# fingerprint:")
    head += [f"#   {line}" for line in render_fingerprint(fp).splitlines()]
    head += [f"# note: {note}" for note in plan.notes]
    return "\n".join(head + _lines(plan.config, plan.reasons)) + "\n"
