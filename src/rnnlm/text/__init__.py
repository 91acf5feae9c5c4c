"""Text and tokens: download, clean, tokenize, token files, vocabulary, ids, corpus statistics."""
