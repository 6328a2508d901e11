from hybridopt.cli import main

raise SystemExit(main())
