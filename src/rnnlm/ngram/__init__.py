"""N-gram language models: counts of every order, smoothed models, their files, Zipf's law."""
