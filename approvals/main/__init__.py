"""The composition root: the app, the command line, the demo and the terminal inbox."""
