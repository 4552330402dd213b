"""Print the n-th bash block of the README's "Quick start" section (1-based), so CI runs the
exact commands a new user copies."""

import pathlib
import re
import sys

text = pathlib.Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
print(blocks[int(sys.argv[1]) - 1].strip())
