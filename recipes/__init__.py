"""Shipped training recipes (YAML), installed as package data of segtool."""
