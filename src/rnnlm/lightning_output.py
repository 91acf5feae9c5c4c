"""What Lightning prints that tells a user nothing, filtered where it arises: importing this
module (every module that builds a Trainer does) installs the filters once."""

from __future__ import annotations

import logging
import re
import warnings


class _Uninformative(logging.Filter):
    """Lightning's lines that tell a user nothing: an advert, and hardware they do not have
    ("GPU available: True, used: False" stays: it points at a setting to change)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("💡 Tip:") or re.match(r"\w+ available: False", message))


logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_Uninformative())
# Lightning 2.6 asks torch 2.13's pytree about a deprecated class on every fit; nothing to act on.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                        category=FutureWarning)
