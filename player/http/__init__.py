"""The real-time driver: fetching with one retry policy, licences, CMCD, the clock, the HTTP player loop."""
