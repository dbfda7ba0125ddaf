"""PyInstaller entry script: the frozen `pachtray` binary (also reached as `mount-server`)."""

from pachtray.frozen import main

raise SystemExit(main())
