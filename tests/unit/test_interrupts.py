"""An interrupt Python loses on its way in is raised again at the next progress report."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# The SIGINT arrives while a weakref callback runs (as an import's module-lock callback did in CI): the
# KeyboardInterrupt is printed as "Exception ignored" and the program goes on. ``check()`` must stop it.
PROGRAM = textwrap.dedent("""
    import os, signal, time, weakref
    from pipeline import interrupts

    interrupts.install()

    class Thing:
        pass

    def callback(_ref):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)

    thing = Thing()
    ref = weakref.ref(thing, callback)
    del thing
    print("went on", interrupts.requested(), flush=True)
    try:
        interrupts.check()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    else:
        print("not stopped", flush=True)
""")


def test_an_interrupt_lost_in_a_callback_is_raised_again_by_check():
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60)
    assert "Exception ignored" in done.stderr, done.stderr  # the interrupt really was lost on its way in
    assert done.stdout.splitlines() == ["went on True", "stopped"], done.stdout + done.stderr


def test_check_passes_when_nothing_was_interrupted():
    code = "from pipeline import interrupts\ninterrupts.install()\ninterrupts.check()\nprint('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr
