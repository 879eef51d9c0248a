"""Reviewers where they are: Slack and email notices and their sender."""
