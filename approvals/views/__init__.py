"""What a person sees: the template engine, its filters, Markdown and the desk's figures."""
