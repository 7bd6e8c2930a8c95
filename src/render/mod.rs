//! The render floor: everything fdlab prints goes through here, so that a
//! command computes values (in `tools`) and chooses a form: `text` for
//! people, `json` for machines. Pictures (DOT, SVG, and the HTML page
//! that steps through a scenario's pictures) belong here too.

pub mod dot;
pub mod html;
pub mod json;
pub mod picture;
pub mod svg;
pub mod text;
