"""Survival analysis: readers, Cox / random survival forest / DeepSurv learners, the task."""
