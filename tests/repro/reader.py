"""A stand-in for a notebook kernel: reads files when told to on stdin, and stays alive.

Commands, one per line; each answers one line on stdout:
  read PATH      -> "<sha256> <size>" of the file's bytes
  thread PATH    -> the same, read in a new thread
  child PATH     -> the same, read by a child process that then exits
  stat PATH      -> "ok" (os.stat and listing the parent, no open)
"""

import hashlib
import os
import subprocess
import sys
import threading


def digest(path: str) -> str:
    with open(path, "rb") as f:
        data = f.read()
    return f"{hashlib.sha256(data).hexdigest()} {len(data)}"


def main() -> None:
    print("ready", flush=True)
    for line in sys.stdin:
        cmd, _, path = line.strip().partition(" ")
        try:
            if cmd == "read":
                out = digest(path)
            elif cmd == "thread":
                box = []
                t = threading.Thread(target=lambda: box.append(digest(path)))
                t.start()
                t.join()
                out = box[0]
            elif cmd == "child":
                out = subprocess.run([sys.executable, __file__, "--once", path], capture_output=True, text=True,
                                     check=True).stdout.strip()
            elif cmd == "stat":
                os.stat(path)
                os.listdir(os.path.dirname(path))
                out = "ok"
            else:
                out = f"error unknown command {cmd}"
        except Exception as e:  # noqa: BLE001 - the test reads the error
            out = f"error {e}"
        print(out, flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--once"]:
        print(digest(sys.argv[2]))
    else:
        main()
