"""How the upstream fixture generators write their JSON: indented, but each list of numbers on one line,
so a fixture stays small and a diff of it stays readable."""

import json
import re

_NUMBERS = re.compile(r"\[\s+(-?[0-9][^\[\]{}]*?)\s+\]")


def write(fixture, path):
    """Writes `fixture` to `path` and returns the text written."""
    text = json.dumps(fixture, indent=1)
    text = _NUMBERS.sub(lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)
    with open(path, "w") as f:
        f.write(text + "\n")
    return text
