package host

// Capsule instances get UUIDs (the source_id of the messages they publish).
import _ "github.com/google/uuid"
