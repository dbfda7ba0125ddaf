from pachtray.cli import main

raise SystemExit(main())
