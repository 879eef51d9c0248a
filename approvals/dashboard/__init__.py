"""The reviewer dashboard: sessions, pages and a live stream of rendered fragments."""
