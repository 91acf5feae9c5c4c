"""`python -m rnnlm.cli`, the same as the `rnnlm` command."""

from rnnlm.cli import main

main()
