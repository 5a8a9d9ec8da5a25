"""Dataset manifests (YAML), installed as package data of segtool."""
