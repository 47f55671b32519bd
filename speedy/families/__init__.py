"""Model families: one package per family (see shared DESIGN.md, "families/<name>/")."""
