"""The ground floor: clock, settings, errors, the wire contract, the database and outbound rules."""
