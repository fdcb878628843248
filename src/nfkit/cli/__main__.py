"""``python -m nfkit.cli …`` (and ``torchrun … -m nfkit.cli …``)."""

import sys

from nfkit.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
