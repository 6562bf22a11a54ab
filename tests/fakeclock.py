"""A clock for the keyspace and executor tests: unix ms that moves only when a test says."""


class FakeClock:
    def __init__(self, now: int = 1_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now
