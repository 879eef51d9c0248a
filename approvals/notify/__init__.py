"""Notifications: reviewers decide from Slack and email."""
