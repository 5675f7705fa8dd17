//! The interface every protocol file implements, and the registry that
//! calls them in order.
//!
//! A protocol is a unit struct implementing `Dissector` in its own file;
//! one line in its family's block of the `dissectors!` list in `mod.rs`
//! declares the file and registers it. The list is expanded into straight-line calls (static
//! dispatch, everything inlined): no table of function pointers or slices
//! reaches the kernel object (see the verifier notes in `mod.rs`).

use super::bytes::Prefix;
use super::{FlowClassifier, PENDING, Side};
use crate::Verdict;

/// One protocol's signatures and state machine.
///
/// Every method returns `PENDING` (nothing final), or a final verdict
/// (`Encryption` other than `Unknown`). An `opening` that recognises its
/// protocol but needs more segments returns `f.opened::<Self>(protocol,
/// step)`, which moves the flow to that step and ends the search as well.
/// A dissector changes the flow only through the methods in `mod.rs`'s
/// "What a dissector may do" block.
pub trait Dissector {
    /// Stage values the protocol keeps between segments, numbered
    /// `0..STEPS` in its own file; the registry places them in the state's
    /// stage byte.
    const STEPS: u8 = 0;

    /// The step at which it awaits the answer to an in-band upgrade request
    /// it saw (STARTTLS): a flow that ends there was refused, since no TLS
    /// followed the request.
    const AWAITS_UPGRADE_ANSWER: Option<u8> = None;

    /// Its handshake opens a tunnel for another protocol (a proxy): TLS
    /// that follows is named `tls`, not this protocol.
    const TUNNEL: bool = false;

    /// The flow's first segment(s), TLS records aside: an opening message
    /// (a client request or hello, a server greeting), or a reply that only
    /// this protocol sends. Tried in registry order until one decides.
    #[inline(always)]
    fn opening(_f: &mut FlowClassifier, _side: Side, _d: &Prefix<'_>) -> Verdict {
        PENDING
    }

    /// Weaker signatures for a flow picked up mid-session (a query, a
    /// frame): tried, in registry order, only after no `opening` matched.
    #[inline(always)]
    fn midstream(_f: &mut FlowClassifier, _side: Side, _d: &Prefix<'_>) -> Verdict {
        PENDING
    }

    /// A segment of a flow this protocol has claimed, at its own `step`
    /// (`0..STEPS`). TLS records never get here.
    #[inline(always)]
    fn step(_f: &mut FlowClassifier, _step: u8, _side: Side, _d: &Prefix<'_>) -> Verdict {
        PENDING
    }
}

/// Where a registered dissector's steps start in the stage byte; generated
/// by `dissectors!`.
pub trait Registered {
    const BASE: u8;
}

/// Declares each protocol's module, places its steps in the stage byte
/// (numbered over the whole list, so a flow's stage names its dissector
/// whichever program runs it), and generates what the core and the family
/// stages call, each one straight sequence of inlined calls:
/// `openings`/`midstream` (a family's, in list order), `step` (the owner
/// of the flow's stage within a family), `family_of` (the family holding a
/// stage), and the branch-free `awaits_upgrade_answer` and `is_tunnel`.
/// A family's number is its place in the list, from 1 (0 is the core); the
/// per-family functions take it as an argument that is a constant in each
/// kernel program, so each program holds only its own family's code.
macro_rules! dissectors {
    ($(
        $(#[$fdoc:meta])* $family:ident {
            $($(#[$doc:meta])* $module:ident :: $ty:ident,)+
        }
    )+) => {
        $($($(#[$doc])* pub mod $module;)+)+

        mod registry {
            use super::dissector::{Dissector, Registered};
            use super::{FlowClassifier, PENDING, Prefix, Side, Stage, eq};
            use crate::Verdict;

            /// Registry positions, for the stage ranges below.
            enum Index { $($($ty,)+)+ }

            /// The families, numbered from 1 in list order.
            #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
            #[repr(u8)]
            enum Family { _Core, $($(#[$fdoc])* $family,)+ }

            /// The family names, in stage order (stage 1 first).
            pub(super) const FAMILY_NAMES: &[&str] = &[$(stringify!($family),)+];

            /// How many family stages there are.
            #[expect(clippy::cast_possible_truncation, reason = "checked below")]
            pub(super) const FAMILIES: u8 = FAMILY_NAMES.len() as u8;
            // A search's chain: hook -> core -> each family twice (openings,
            // mid-stream); the kernel allows 33 tail calls per packet.
            const _: () = assert!(FAMILY_NAMES.len() < 16, "too many families for the tail-call chain");

            /// Each dissector's step count, in registry order (compile time
            /// only: read by `base`, never at run time).
            const STEPS: &[u8] = &[$($(<super::$module::$ty as Dissector>::STEPS,)+)+];

            /// The first stage value of the dissector at `index`: after the
            /// classifier's own stages and every earlier dissector's steps.
            const fn base(index: usize) -> u8 {
                let mut b = Stage::FIRST_DISSECTOR as u32;
                let mut i = 0;
                while i < index {
                    b += STEPS[i] as u32;
                    i += 1;
                }
                assert!(b <= u8::MAX as u32, "stage byte overflow");
                b as u8
            }

            const _: () = {
                base(STEPS.len());
            };

            $($(impl Registered for super::$module::$ty {
                const BASE: u8 = base(Index::$ty as usize);
            })+)+

            /// Family `family`'s first dissector whose `opening` decides.
            #[inline(always)]
            pub(super) fn openings(family: u8, f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
                $(
                    if family == Family::$family as u8 {
                        $(
                            let v = <super::$module::$ty as Dissector>::opening(f, side, d);
                            if v != PENDING {
                                return v;
                            }
                        )+
                        return PENDING;
                    }
                )+
                PENDING
            }

            /// Family `family`'s first dissector whose `midstream` decides.
            #[inline(always)]
            pub(super) fn midstream(family: u8, f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
                $(
                    if family == Family::$family as u8 {
                        $(
                            let v = <super::$module::$ty as Dissector>::midstream(f, side, d);
                            if v != PENDING {
                                return v;
                            }
                        )+
                        return PENDING;
                    }
                )+
                PENDING
            }

            /// The owner of a dissector stage, in family `family`, takes
            /// the segment.
            #[inline(always)]
            pub(super) fn step(family: u8, f: &mut FlowClassifier, stage: u8, side: Side, d: &Prefix<'_>) -> Verdict {
                $(
                    if family == Family::$family as u8 {
                        $(
                            let base = <super::$module::$ty as Registered>::BASE;
                            let steps = <super::$module::$ty as Dissector>::STEPS;
                            if steps != 0 && (base..base + steps).contains(&stage) {
                                return <super::$module::$ty as Dissector>::step(f, stage - base, side, d);
                            }
                        )+
                        return PENDING;
                    }
                )+
                PENDING
            }

            /// The family holding the dissector whose step `stage` is, 0 if
            /// none; branch-free (the ranges are disjoint).
            #[inline(always)]
            pub(super) fn family_of(stage: u8) -> u8 {
                let mut family = 0u32;
                $($(
                    {
                        let base = <super::$module::$ty as Registered>::BASE;
                        let steps = <super::$module::$ty as Dissector>::STEPS;
                        let inside = u32::from(stage >= base) & u32::from(stage < base + steps);
                        family |= inside * Family::$family as u32;
                    }
                )+)+
                #[expect(clippy::cast_possible_truncation, reason = "a family number")]
                {
                    family as u8
                }
            }

            /// 1 if `stage` is a step that awaits an upgrade answer, else 0;
            /// branch-free.
            #[inline(always)]
            pub(super) fn awaits_upgrade_answer(stage: u8) -> u32 {
                let mut asked = 0;
                $($(
                    if let Some(step) = <super::$module::$ty as Dissector>::AWAITS_UPGRADE_ANSWER {
                        asked |= eq(stage, <super::$module::$ty as Registered>::BASE + step);
                    }
                )+)+
                asked
            }

            /// 1 if `stage` belongs to a tunnel, else 0; branch-free.
            #[inline(always)]
            pub(super) fn is_tunnel(stage: u8) -> u32 {
                let mut tunnel = 0;
                $($(
                    if <super::$module::$ty as Dissector>::TUNNEL {
                        let base = <super::$module::$ty as Registered>::BASE;
                        let steps = <super::$module::$ty as Dissector>::STEPS;
                        tunnel |= u32::from(stage >= base) & u32::from(stage < base + steps);
                    }
                )+)+
                tunnel
            }
        }
    };
}
