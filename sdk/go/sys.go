package astrid

// SignalReady tells the host that this run-loop capsule has set itself up (subscribed to what it
// serves) and is ready for messages. A run-loop capsule is one that exports run, which the host
// starts in the background once the capsule is loaded; `astrid-host run` waits up to 5 s for
// each such capsule to signal ready before it announces that the capsules are loaded and
// publishes its --publish messages, so nothing published then is missed. Other capsules need not
// call it.
func SignalReady() { hostSignalReady() }
