"""``python -m smoke --url … --token …``: see smoke.runner."""

from smoke.runner import main

raise SystemExit(main())
