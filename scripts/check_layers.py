#!/usr/bin/env python3
"""Checks the folder dependency rule of docs/architecture.md: every #include "x/..." in a
library or tool folder names a folder that folder may use (lower floors only; no siblings).
Prints each offending line as file:line and exits 1, or prints a one-line summary and exits 0."""
import os
import re
import sys

# folder -> folders it may include from (itself is always allowed)
ALLOWED = {
    "include": set(),
    "core": {"include"},
    "cache": {"core", "include"},
    "student": {"core", "include"},
    "distill": {"cache", "core", "include"},
    "eval": {"core", "include"},
    "pipeline": {"distill", "eval", "student", "cache", "core", "include"},
    "serve": {"pipeline", "distill", "eval", "student", "cache", "core", "include"},
    "cli": {"serve", "pipeline", "distill", "eval", "student", "cache", "core", "include"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def target_folder(name, here):
    if "/" in name:
        return name.split("/", 1)[0]
    if name == "understudy.h":
        return "include"
    return here  # a file next to this one


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bad, files = [], 0
    for folder in ALLOWED:
        path = os.path.join(root, folder)
        if not os.path.isdir(path):
            continue
        for name in sorted(os.listdir(path)):
            if not name.endswith((".c", ".h")):
                continue
            files += 1
            with open(os.path.join(path, name), encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    to = target_folder(m.group(1), folder)
                    if to == folder:
                        continue
                    if to not in ALLOWED:
                        bad.append(f"{folder}/{name}:{number}: includes {m.group(1)}, "
                                   f"outside the library's folders")
                    elif to not in ALLOWED[folder]:
                        bad.append(f"{folder}/{name}:{number}: {folder}/ must not include "
                                   f"{m.group(1)} ({folder}/ may use: "
                                   f"{', '.join(sorted(ALLOWED[folder])) or 'nothing'})")
    for line in bad:
        print(line)
    if bad:
        print(f"check_layers: {len(bad)} include(s) break the folder order of "
              f"docs/architecture.md", file=sys.stderr)
        return 1
    print(f"check_layers: {files} files, every include points down the folder order")
    return 0


if __name__ == "__main__":
    sys.exit(main())
