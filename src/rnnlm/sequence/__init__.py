"""Sequence models of a numeric series: the series, autoregressive models, the lag MLP, their
k-step forecasts and figure."""
