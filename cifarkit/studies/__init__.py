"""What a chapter asks for: variants of an experiment over matched seeds, the ablation
groups, the fast recipe's ladder and the transfer study."""
