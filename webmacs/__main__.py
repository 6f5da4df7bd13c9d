from webmacs.cli import main

raise SystemExit(main())
