"""JSON that every parser reads: JSON has no NaN or infinity, and Python writes them as bare
NaN/Infinity literals, which strict parsers reject. Non-finite numbers are written as their names
('nan', 'inf', '-inf') instead, where a reader sees them as values that are not numbers."""

import json
import math


def encode(value):
    """value with every non-finite float as its name, through dicts, lists and tuples."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def dumps(value, **kwargs) -> str:
    return json.dumps(encode(value), allow_nan=False, **kwargs)


def non_finite(values: dict) -> list[str]:
    """Names of the numeric values that are NaN or infinite."""
    return [
        k
        for k, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isfinite(v)
    ]
