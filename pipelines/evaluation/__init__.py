"""Evaluation of two to four models on a held-out table: metrics with bootstrap intervals and paired tests."""
