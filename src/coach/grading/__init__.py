"""Grading: one port, an offline grader, an LLM grader, and the upload splitter."""
