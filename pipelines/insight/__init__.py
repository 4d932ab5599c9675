"""Why this output? The logit lens, input attributions (Captum), attention over a generated answer, token inspection.

Importing this package imports neither torch nor captum: the tasks import them when they run.
"""
