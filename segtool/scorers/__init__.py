"""Shipped cluster scorers (JSON), one per pipeline method; see segtool.cluster_scorer."""
