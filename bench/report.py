"""One line per measurement, always ours against a reference measured in the same run."""

from __future__ import annotations


def report(capability: str, ours: float, reference_name: str, reference: float, unit: str = "s") -> str:
    """Print and return `capability: ours X unit | reference Y unit | ratio ours/reference`."""
    ratio = ours / reference if reference else float("inf")
    line = (f"{capability:<40} ours {ours:9.3f} {unit} | {reference_name} {reference:9.3f} {unit} "
            f"| ratio {ratio:6.2f}")
    print(line, flush=True)
    return line
