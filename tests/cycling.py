"""Protocol text shared by the engine and campaign tests."""


def cccv_cycles(name: str, times: int) -> str:
    """A protocol of ``times`` 1C CC-CV charge / 1C discharge cycles with 10-minute rests."""
    return f"""\
name: {name}
steps:
  - repeat:
      times: {times}
      steps:
        - cccv: {{current: 1C, voltage: $v_max, until_current: C/20, max_time: 3 h}}
        - rest: 10 min
        - cc: {{current: -1C, until_voltage: $v_min, max_time: 3 h}}
        - rest: 10 min
"""
