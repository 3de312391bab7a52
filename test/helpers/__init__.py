"""Small programs that tests start as separate OS processes (DDS tests), and what they share."""
