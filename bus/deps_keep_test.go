package bus

// The bus's property tests use rapid; this keeps the requirement while they are being written.
import _ "pgregory.net/rapid"
