from cloudboot.cli import main

raise SystemExit(main())
