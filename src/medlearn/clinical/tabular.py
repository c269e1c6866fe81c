"""Tabular clinical data: reader, schema, preprocessing, classical models and the learner."""
