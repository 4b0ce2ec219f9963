"""``python -m multimodal_clf``: the ``multimodal-clf`` command."""

import sys

from multimodal_clf.cli import main

if __name__ == "__main__":
    sys.exit(main())
