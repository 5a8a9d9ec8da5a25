"""pipeline/foreground"""
