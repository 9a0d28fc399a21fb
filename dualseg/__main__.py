from dualseg.cli import main

raise SystemExit(main())
