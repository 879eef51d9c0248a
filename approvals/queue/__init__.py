"""The approval queue: opening, deciding, expiring, and the policies that steer it."""
