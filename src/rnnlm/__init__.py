"""rnnlm: sequence models of text, from the RNN chapter of Dive into Deep Learning."""

__version__ = "0.1.0"
