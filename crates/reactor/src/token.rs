//! Connection identities and their packing into `mio::Token`s.

use mio::Token;

/// The waker's token; reserved at the top of the range so it never meets a slab key.
pub(crate) const WAKER: Token = Token(usize::MAX);
/// The listener's token.
pub(crate) const LISTENER: Token = Token(usize::MAX - 1);
/// The alarm clock's token (the reactor's `timerfd`).
pub(crate) const ALARM: Token = Token(usize::MAX - 2);

// A token packs a 32-bit index and a 31-bit generation into a `usize`: 64-bit targets only.
// Said here, at compile time, rather than found as a shift overflow at run time.
const _: () = assert!(
    usize::BITS >= 64,
    "rtserve-reactor packs connection ids into 64-bit mio tokens: 64-bit targets only"
);

/// A connection: its slab index and the generation of that slot.
///
/// A slot is reused once its connection closes; the generation tells a late event, timer or
/// completion for the old connection from one for the new.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ConnId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl ConnId {
    /// The token: index in the low 32 bits, generation in the high 32 (shifted so that the
    /// reserved tokens, all ones in the high bits, stay unreachable).
    pub(crate) fn token(self) -> Token {
        Token(((self.generation as usize & 0x7fff_ffff) << 32) | self.index as usize)
    }

    /// The identity a token carries, if it names a connection.
    pub(crate) fn from_token(token: Token) -> Option<Self> {
        if token == WAKER || token == LISTENER || token == ALARM {
            return None;
        }
        Some(Self {
            index: (token.0 & 0xffff_ffff) as u32,
            generation: (token.0 >> 32) as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for id in [
            ConnId {
                index: 0,
                generation: 0,
            },
            ConnId {
                index: u32::MAX,
                generation: 0x7fff_ffff,
            },
            ConnId {
                index: 7,
                generation: 12345,
            },
        ] {
            assert_eq!(ConnId::from_token(id.token()), Some(id));
            assert_ne!(id.token(), WAKER);
            assert_ne!(id.token(), LISTENER);
        }
        assert_eq!(ConnId::from_token(WAKER), None);
    }
}
