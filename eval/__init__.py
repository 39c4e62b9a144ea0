"""Evaluation metrics for genie's tasks (REFERENCE section 4): one module per task, which its
task names (`Task.metric`); `boxes` and `scores` are the parts they share."""
