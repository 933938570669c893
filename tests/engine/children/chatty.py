"""Print LINES short lines, SLEEP seconds apart (default: no pause), then exit 0."""

import sys
import time

lines = int(sys.argv[1])
pause = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
for i in range(lines):
    sys.stdout.write(f"line {i} " + "x" * 40 + "\n")
    sys.stdout.flush()
    if pause:
        time.sleep(pause)
